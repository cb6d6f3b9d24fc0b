"""Shapiro-Wilk reference vectors for packages/monitoring/src/shapiro-wilk.test.ts.

scipy is not installed on the machine that generated them, so the expected values are published ones:
  - x1, x2: scipy's test suite (scipy/stats/tests/test_morestats.py, TestShapiro.test_basic), whose
    values come from AS R94 (swilk.c, single precision), W to 6 decimals, p to 6 (x1) and 3 (x2);
  - x3: the same test ("verified against R"), sample stats.norm.rvs(loc=5, scale=3, size=100,
    random_state=12345678), regenerated here with numpy's legacy RandomState (norm.rvs draws
    standard_normal and scales); W to 6 decimals, p to 3;
  - x4: Royston (1995), the example of the original paper, W = 0.83467, p = 0.000914.
Run: /usr/bin/python3 shapiro_wilk_vectors.py > shapiro-wilk.json
"""
import json

import numpy as np

x3 = np.random.RandomState(12345678).standard_normal(100) * 3 + 5
cases = [
    {
        "name": "scipy x1",
        "sample": [0.11, 7.87, 4.61, 10.14, 7.95, 3.14, 0.46, 4.43, 0.21, 4.75, 0.71, 1.52, 3.24,
                   0.93, 0.42, 4.97, 9.53, 4.55, 0.47, 6.66],
        "w": 0.90047299861907959, "wDecimals": 6, "p": 0.042089745402336121, "pDecimals": 6,
    },
    {
        "name": "scipy x2",
        "sample": [1.36, 1.14, 2.92, 2.55, 1.46, 1.06, 5.27, -1.11, 3.48, 1.10, 0.88, -0.51, 1.46,
                   0.52, 6.20, 1.69, 0.08, 3.67, 2.81, 3.49],
        "w": 0.9590270, "wDecimals": 6, "p": 0.52460, "pDecimals": 3,
    },
    {
        "name": "scipy x3 (R-verified, n = 100)",
        "sample": [float(v) for v in x3],
        "w": 0.9772805571556091, "wDecimals": 6, "p": 0.08144091814756393, "pDecimals": 3,
    },
    {
        "name": "Royston 1995 example (n = 25)",
        "sample": [0.139, 0.157, 0.175, 0.256, 0.344, 0.413, 0.503, 0.577, 0.614, 0.655, 0.954,
                   1.392, 1.557, 1.648, 1.690, 1.994, 2.174, 2.206, 3.245, 3.510, 3.571, 4.354,
                   4.980, 6.084, 8.351],
        "w": 0.83467, "wDecimals": 5, "p": 0.000914, "pDecimals": 6,
    },
]
print(json.dumps({"generator": "shapiro_wilk_vectors.py", "numpy": np.__version__, "cases": cases}, indent=1))
