"""Where extraction runs beyond the local process pool: a Dask cluster (``neardup[dask]``)."""

__all__: list[str] = []
