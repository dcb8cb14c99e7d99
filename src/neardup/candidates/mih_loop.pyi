"""Types of the compiled multi-index query loop (mih_loop.c)."""

import numpy as np

def search(qcodes: np.ndarray, qkeys: np.ndarray,
           chunks: tuple[tuple[np.ndarray, int, np.ndarray, np.ndarray, int, np.ndarray], ...], radius: int,
           out_q: np.ndarray, out_id: np.ndarray, out_d: np.ndarray, state: np.ndarray) -> int: ...
