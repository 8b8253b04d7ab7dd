"""Judging explanations: metrics as pure batched functions, one value per sample.

    faithfulness   deletion_auc, insertion_auc, naive_faithfulness, road
    localization   pointing_game, iosr
    robustness     max_sensitivity
    sensitivity    class_sensitivity
    sanity checks  model_randomization, data_randomization (Adebayo et al., 2018)

Every function takes everything it uses as arguments (randomness as a seed or as data) and
returns float32 Tensors of shape (N,) (with `return_curve`, also the (N, steps) curve). The
perturbation metrics evaluate their perturbed images through xaifn's chunked compiled primitive.
The class API of the original package is `xaifn.benchmark`.
"""
from xaifn.metrics.faithfulness import deletion_auc, insertion_auc, naive_faithfulness
from xaifn.metrics.localization import iosr, pointing_game
from xaifn.metrics.randomization import (Randomization, data_randomization, model_randomization, permuted_labels,
                                         spearman, ssim)
from xaifn.metrics.road import linear_imputation, road
from xaifn.metrics.robustness import max_sensitivity
from xaifn.metrics.sensitivity import class_sensitivity

__all__ = ["deletion_auc", "insertion_auc", "naive_faithfulness", "road", "linear_imputation",
           "pointing_game", "iosr", "max_sensitivity", "class_sensitivity", "model_randomization",
           "data_randomization", "permuted_labels", "Randomization", "spearman", "ssim"]
