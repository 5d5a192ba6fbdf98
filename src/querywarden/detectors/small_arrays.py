"""numpy's C entry points for the short vectors and few rows a detector handles per query.

``np.einsum`` and ``np.count_nonzero`` are Python wrappers around C functions; on a
64-feature query or a handful of stored rows the wrapper costs as much as the work, and the
detectors call them on every interaction. These names call the C functions directly: the
same results, bit for bit (the wrappers pass the arguments through unchanged).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

try:
    from numpy._core.multiarray import c_einsum as _c_einsum
    from numpy._core.multiarray import count_nonzero as _count_nonzero
except ImportError:  # a numpy without this layout: the public wrappers, which give the same results
    _c_einsum = np.einsum
    _count_nonzero = np.count_nonzero


def row_sq_norms(rows: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """The squared norm of each row of a 2-d array (``np.einsum("ij,ij->i", rows, rows)``)."""
    out: npt.NDArray[np.floating] = _c_einsum("ij,ij->i", rows, rows)
    return out


def count_nonzero(a: npt.NDArray[np.generic]) -> int:
    """The number of non-zero (true) elements of ``a`` (``np.count_nonzero(a)``)."""
    return int(_count_nonzero(a))
