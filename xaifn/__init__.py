"""xaifn: explanation (attribution) methods for MindSpore networks, as pure composable functions.

Functional API (flat): `gradient`, `deconvolution`, `guided_backprop`, `gradcam`, and the traceable
building blocks `input_gradient`, `channel_max_abs`, `saliency`, `rule_view`,
`layer_probe_view`, `layer_activation_gradient`, `gradcam_map`, `target_logit_sum`.
Class API of the original package: `xaifn.explanation`.
"""
from xaifn._rules import rule_view
from xaifn._views import features_view, network_view
from xaifn.gradcam import (channels_last, gradcam, gradcam_map, layer_activation_gradient, layer_probe_view,
                           tokens_to_grid)
from xaifn.masks import OcclusionWindows, RiseMasks, rise_masks
from xaifn.occlusion import occlusion
from xaifn.rise import rise
from xaifn.rise_plus import rise_plus
from xaifn import ood, visual
from xaifn.gradients import (channel_max_abs, deconvolution, gradient, guided_backprop, input_gradient,
                             saliency, target_logit_sum)

__version__ = "0.1.0"

__all__ = [
    "channel_max_abs", "deconvolution", "gradcam", "gradcam_map", "gradient", "guided_backprop",
    "input_gradient", "layer_activation_gradient", "layer_probe_view", "rule_view", "saliency",
    "target_logit_sum", "OcclusionWindows", "RiseMasks", "rise_masks", "occlusion", "rise",
    "rise_plus", "ood", "network_view", "features_view", "visual", "tokens_to_grid", "channels_last",
]
