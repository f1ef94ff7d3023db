"""A training run, owned in one place, for every trainer (the pose trainer ``openfields.train`` and those
to come):

* :mod:`~openfields.training.fit`: a whole run: lock, log, resume, epochs, stop signals, how it ended;
* :mod:`~openfields.training.recipe`, :mod:`~openfields.training.run_settings`: what a run trains (network,
  loss or objective, loaders, test sets, key metric) and how it is run (frozen settings built once from the
  flags);
* :mod:`~openfields.training.loop`: the epochs (``Trainer``): train steps, validation, evaluation, EMA;
* :mod:`~openfields.training.optimize`: optimizers and learning-rate schedules;
* :mod:`~openfields.training.checkpointer`, :mod:`~openfields.training.snapshots`: which checkpoints are
  written and kept, the best one by the key metric;
* :mod:`~openfields.training.resume`: ``--resume`` and the random states;
* :mod:`~openfields.training.run_files`: the name of every file of a run;
* :mod:`~openfields.training.log`: the JSON-lines log, its writer and its one reader;
* :mod:`~openfields.training.lock`, :mod:`~openfields.training.preemption`,
  :mod:`~openfields.training.distributed`: one run per output, stop signals, ``--ddp``.
"""
