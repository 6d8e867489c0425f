"""Input checks shared by the network models: square non-negative matrices and matching vectors."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from graph.errors import GraphInputError

FloatArray = NDArray[np.float64]


def square_matrix(name: str, values: ArrayLike) -> FloatArray:
    """A finite, non-negative n × n float matrix, or a GraphInputError naming `name`."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise GraphInputError(f"{name}: expected a square 2-D array, got shape {matrix.shape}")
    finite_non_negative(name, matrix)
    return matrix


def vector(name: str, values: ArrayLike, n: int, matrix_name: str) -> FloatArray:
    """A finite, non-negative vector of length n (the size of `matrix_name`)."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise GraphInputError(
            f"{name}: expected shape ({n},) to match the {matrix_name} matrix, got {array.shape}"
        )
    finite_non_negative(name, array)
    return array


def finite_non_negative(name: str, array: FloatArray) -> None:
    if not np.isfinite(array).all():
        raise GraphInputError(f"{name}: contains NaN or infinite values")
    if (array < 0).any():
        where = [tuple(int(i) for i in ix) for ix in np.argwhere(array < 0)[:5]]
        raise GraphInputError(f"{name}: contains negative values at {where}")
