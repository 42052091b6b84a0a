"""Process-level helpers: the Numba cache folder (``cache``), the fast exit (``exit``),
thread settings (``threads``), the batch split over fastnn's threads (``parallel``) and the
parameter-init random generator (``rng``)."""
