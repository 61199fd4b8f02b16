"""Objective metrics: per-window features (:mod:`.features`) and set-level comparisons (:mod:`.compare`)."""

from .compare import (classifier_two_sample_test, copy_rate, frechet_distance, kl_divergence, overlap_area,
                      training_window_keys)
from .features import (HISTOGRAM_FEATURES, N_FEATURES, NOTE_LENGTHS, PITCH_CLASSES, SCALAR_FEATURES, SCALARS,
                       feature_matrix, feature_vector)

__all__ = [
    "HISTOGRAM_FEATURES", "NOTE_LENGTHS", "N_FEATURES", "PITCH_CLASSES", "SCALARS", "SCALAR_FEATURES",
    "classifier_two_sample_test", "copy_rate", "feature_matrix", "feature_vector", "frechet_distance",
    "kl_divergence", "overlap_area", "training_window_keys",
]
