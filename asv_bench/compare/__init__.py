"""The pieces of ``asv_bench/compare_torch.py``: the nets and steps of both libraries
(``nets``), how steps are timed side by side (``timing``), the whole-epoch race
(``epoch``), runs against a competing busy process (``contended``), start-up children
(``startup``) and the report (``report``)."""
