"""DeepLabCut's files as they are, in one place: its ``pytorch_config.yaml`` translated into openfields'
flags (:mod:`pytorch_config`), and its prediction tables written from openfields' poses
(:mod:`prediction_table`: the CSV / HDF5 layout; :mod:`table_output`: ``--dlc-table`` of predict and eval).
A DeepLabCut project's labelled data is a dataset: the ``dlc`` plugin (``plugins/dlc``).
"""
