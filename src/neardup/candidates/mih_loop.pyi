"""Types of the compiled multi-index loops (mih_loop.c): the query and the tables' build."""

import numpy as np

def search(qcodes: np.ndarray, qkeys: np.ndarray,
           chunks: tuple[tuple[np.ndarray, int, np.ndarray, np.ndarray, int, np.ndarray], ...], radius: int,
           out_q: np.ndarray, out_id: np.ndarray, out_d: np.ndarray, state: np.ndarray) -> int: ...

def build(codes: np.ndarray, table: np.ndarray, ids: np.ndarray, offsets: np.ndarray, offset_bytes: int,
          nonempty: np.ndarray, out_ids: np.ndarray, id_bytes: int, out_codes: np.ndarray) -> None: ...
