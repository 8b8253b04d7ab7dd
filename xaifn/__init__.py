"""xaifn: explanation (attribution) methods for MindSpore networks, as pure composable functions.

Functional API (flat): `gradient`, `deconvolution`, `guided_backprop`, `gradcam`, and the traceable
building blocks `input_gradient`, `channel_max_abs`, `saliency`, `rule_view`,
`layer_probe_view`, `layer_activation_gradient`, `layer_activation`, `gradcam_map`, `target_logit_sum`.
Metrics (judging explanations): `xaifn.metrics`.
Class API of the original package: `xaifn.explanation` and `xaifn.benchmark`.
"""
from xaifn._rules import rule_view
from xaifn._views import features_view, network_view
from xaifn.gradcam import (channels_last, gradcam, gradcam_map, layer_activation, layer_activation_gradient,
                           layer_probe_view, tokens_to_grid)
from xaifn.masks import OcclusionWindows, RiseMasks, rise_masks
from xaifn.occlusion import occlusion
from xaifn.rise import rise
from xaifn.rise_plus import rise_plus
from xaifn import metrics, ood, visual
from xaifn.dataset_runner import explain_dataset
from xaifn.gradients import (channel_max_abs, deconvolution, gradient, guided_backprop, input_gradient,
                             input_x_gradient, saliency, target_logit_sum)
from xaifn.integrated_gradients import integrated_gradients, integrated_gradients_map, quadrature
from xaifn.smooth_grad import GaussianNoise, smooth_grad
from xaifn.cams import eigencam, gradcam_plus_plus, hirescam, layercam, xgradcam
from xaifn.scorecam import scorecam
from xaifn.guided_gradcam import guided_gradcam

__version__ = "0.1.0"

__all__ = [
    "channel_max_abs", "deconvolution", "gradcam", "gradcam_map", "gradient", "guided_backprop",
    "input_gradient", "layer_activation_gradient", "layer_activation", "layer_probe_view", "rule_view", "saliency",
    "target_logit_sum", "OcclusionWindows", "RiseMasks", "rise_masks", "occlusion", "rise",
    "rise_plus", "ood", "network_view", "features_view", "visual", "tokens_to_grid", "channels_last", "metrics",
    "explain_dataset",
    "input_x_gradient", "integrated_gradients", "integrated_gradients_map", "quadrature",
    "GaussianNoise", "smooth_grad", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam",
    "scorecam", "guided_gradcam",
]
