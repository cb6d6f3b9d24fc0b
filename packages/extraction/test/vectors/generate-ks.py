"""Reference values for the Kolmogorov-Smirnov survival function, from SciPy.

kstwo is the exact distribution of the two-sided one-sample statistic D_n (Simard and L'Ecuyer 2011);
kstwobign is Kolmogorov's limiting distribution of sqrt(n) D_n. Run: python3 generate-ks.py > ks.json
"""
import json

import scipy
from scipy.stats import kstwo, kstwobign

cases = []
for n in [1, 2, 5, 10, 20, 50, 99, 100, 200, 500, 1000]:
    for d in [0.001, 0.01, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99]:
        cases.append({"n": n, "d": d, "sf": float(kstwo.sf(d, n))})
limiting = []
for n in [2000, 5000, 20000]:
    for x in [0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0]:
        d = x / n ** 0.5
        limiting.append({"n": n, "d": d, "sf": float(kstwo.sf(d, n))})
print(json.dumps({"generator": "generate-ks.py", "scipy": scipy.__version__, "exact": cases, "large": limiting}, indent=1))
