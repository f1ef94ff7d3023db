"""Prediction files in other tools' formats (DeepLabCut's table: :mod:`dlc_table`)."""
