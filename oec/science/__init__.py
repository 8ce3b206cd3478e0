"""The science testbed (``make science``, ``python -m oec.science``): a designed CPU-sized experiment
on the embedded tasks that measures covariate shift and compares OEC with BC, masking and switch
times at equal budgets, with intervals over seeds and tasks. See ``conf/science/`` and the README."""
