"""tracemark's watermark in Python: keys, green lists, the distortion-free Gumbel schemes, detection
and logits processors.

The core (keys, PRF, green lists, keyed uniforms, detection with exact log-space p-values) uses the
standard library only; numpy makes whole-vocabulary green lists fast; torch is needed only by the logits
processors in `tracemark.torch_processors` and `tracemark.vllm_processor`.
"""

from .detect import Detection, KeyDetection, WindowResult, decide_verdict, detect, score
from .gamma_tail import log10_gamma_sf, log10_weighted_gamma_sf
from .gumbel import gumbel_choice, gumbel_log10_p_value, gumbel_score, gumbel_window_scan, gumbel_z_score
from .keys import (
    KeyFileError,
    Scheme,
    WatermarkKey,
    load_key_file,
    parse_key_file,
    serialize_key_file,
)
from .sampling import gumbel_token, kept_candidates
from .statistics import log10_binomial_cdf, log10_binomial_sf, z_score
from .watermarker import Watermarker

__version__ = "0.2.0"

__all__ = [
    "Detection",
    "KeyDetection",
    "KeyFileError",
    "Scheme",
    "WatermarkKey",
    "Watermarker",
    "WindowResult",
    "decide_verdict",
    "detect",
    "gumbel_choice",
    "gumbel_log10_p_value",
    "gumbel_score",
    "gumbel_token",
    "gumbel_window_scan",
    "gumbel_z_score",
    "kept_candidates",
    "load_key_file",
    "log10_gamma_sf",
    "log10_weighted_gamma_sf",
    "log10_binomial_cdf",
    "log10_binomial_sf",
    "parse_key_file",
    "score",
    "serialize_key_file",
    "z_score",
]
