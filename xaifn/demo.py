"""The end-to-end demo: train a small classifier on synthetic shapes, explain it with every method.

`python -m xaifn demo` builds a seeded synthetic data set (`xaifn.synthetic`), trains a LeNet5 on
it, trains an OoD head on its features, explains held-out images with every method, and writes a
gallery, one picture per method, the checkpoints and a report (Markdown + JSON) with each
method's time per image and its metrics (`xaifn.metrics`): deletion and insertion scores,
pointing game and IoSR against the recorded shape boxes, and max-sensitivity; the mean deletion and
insertion curves of every method are drawn in curves.png.
"""
import json
import pathlib
import time

import numpy as np
import mindspore as ms
from mindspore import nn

import xaifn
from xaifn import _cache, metrics, ood, synthetic, visual
from xaifn.models import LeNet5

METHODS = ("gradient", "deconvolution", "guided_backprop", "gradcam", "occlusion", "rise", "rise_plus",
           "input_x_gradient", "integrated_gradients", "smooth_grad", "guided_gradcam", "gradcam_plus_plus",
           "xgradcam", "layercam", "hirescam", "eigencam", "scorecam")
GRADCAM_LAYER = "conv2"


def explainers(net, activation, inlier, masks, layer=GRADCAM_LAYER, window=None, stride=None, chunk=None):
    """name -> (inputs, targets) -> (N, 1, H, W) map, for every method, through the public API.

    `window` and `stride` are Occlusion's (default: the original's, 3 and 1 for 32 x 32 images);
    `chunk`, when given, is handed unchanged to the perturbation methods.
    """
    budget = {} if chunk is None else {"chunk": chunk}
    return {
        "gradient": lambda x, t: xaifn.gradient(net, x, t),
        "deconvolution": lambda x, t: xaifn.deconvolution(net, x, t),
        "guided_backprop": lambda x, t: xaifn.guided_backprop(net, x, t),
        "gradcam": lambda x, t: xaifn.gradcam(net, x, t, layer=layer),
        "occlusion": lambda x, t: xaifn.occlusion(net, activation, x, t, window=window, stride=stride, **budget),
        "rise": lambda x, t: xaifn.rise(net, activation, x, t, masks, **budget),
        "rise_plus": lambda x, t: xaifn.rise_plus(net, activation, inlier, x, t, masks, **budget),
        **_gradient_explainers(net, activation, layer),
    }


def _gradient_explainers(net, activation, layer):
    """The methods of issue 12; signed per-channel maps are shown as max_c abs (like Gradient).

    SmoothGrad averages Gradient over 25 noise samples of std 0.15 * (max - min) of the batch.
    """
    def smooth_grad(x, t):
        noise = xaifn.GaussianNoise(0, 25, tuple(x.shape[1:]), 0.15 * float((x.max() - x.min()).asnumpy()))
        return xaifn.smooth_grad(lambda a, b: xaifn.gradient(net, a, b), x, t, noise)

    per_channel = {
        "input_x_gradient": lambda x, t: xaifn.input_x_gradient(net, x, t),
        "integrated_gradients": lambda x, t: xaifn.integrated_gradients(net, x, t, steps=32),
        "guided_gradcam": lambda x, t: xaifn.guided_gradcam(net, x, t, layer=layer),
    }
    cams = {name: (lambda x, t, f=getattr(xaifn, name): f(net, x, t, layer=layer))
            for name in ("gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam")}
    return {**{name: (lambda x, t, f=f: xaifn.channel_max_abs(f(x, t))) for name, f in per_channel.items()},
            "smooth_grad": smooth_grad, **cams,
            "scorecam": lambda x, t: xaifn.scorecam(net, activation, x, t, layer=layer)}


def _normalise(images):
    return ms.Tensor((images - 0.5) / 0.25, ms.float32)


def train_classifier(images, labels, epochs, seed, log, batch=32):
    """A LeNet5 trained with Adam on (images, labels); returns the network (eval mode)."""
    ms.set_seed(seed)
    net = LeNet5(num_class=len(synthetic.CLASSES))
    optimizer = nn.Adam(net.trainable_params(), learning_rate=2e-3)
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")

    def loss_of(x, y):
        return loss_fn(net(x), y)
    step = _cache.training_step(loss_of, optimizer)
    net.set_train(True)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        order = rng.permutation(len(labels))
        losses = [float(step(_normalise(images[idx]), ms.Tensor(labels[idx])))
                  for idx in np.array_split(order, max(1, len(order) // batch))]
        log(f"  classifier epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f}")
    net.set_train(False)
    return net


def accuracy(net, images, labels):
    """Fraction of images whose predicted class is the label."""
    predictions = net(_normalise(images)).argmax(axis=1).asnumpy()
    return float((predictions == labels).mean())


def auroc(inlier_scores, outlier_scores):
    """Area under the ROC curve of inliers scoring above outliers (ties count one half)."""
    inl, out = np.asarray(inlier_scores)[:, None], np.asarray(outlier_scores)[None, :]
    return float((inl > out).mean() + 0.5 * (inl == out).mean())


def box_masks(boxes, size):
    """(N, 1, H, W) float32 masks, 1 inside each box (top, left, bottom, right), bottom/right excluded."""
    rows, cols = np.arange(size[0])[:, None], np.arange(size[1])[None, :]
    inside = [(rows >= t) & (rows < b) & (cols >= l) & (cols < r) for t, l, b, r in boxes]
    return np.stack(inside)[:, None].astype(np.float32)


def pointing_game(maps, boxes):
    """Per image: 1 if the most salient pixel (summed over target maps) lies inside its box
    (`xaifn.metrics.pointing_game` with radius 1)."""
    summed = np.asarray(maps).sum(axis=1, keepdims=True)
    return metrics.pointing_game(summed, box_masks(boxes, summed.shape[2:]), radius=1).asnumpy() > 0


def judge(net, activation, explain, x, targets, maps, boxes, seed, perturbations):
    """The demo's metrics of one method's maps: ({name: mean over images}, mean deletion curve,
    mean insertion curve). Max-sensitivity re-explains `perturbations` noisy copies (seeded)."""
    masks = box_masks(boxes, maps.shape[2:])
    deletion, deletion_curve = metrics.deletion_auc(net, activation, x, targets, maps, return_curve=True)
    insertion, insertion_curve = metrics.insertion_auc(net, activation, x, targets, maps, return_curve=True)
    sensitivity = metrics.max_sensitivity(explain, x, targets, seed=seed, num_perturbations=perturbations,
                                          saliency=maps).asnumpy()
    scores = dict(deletion=float(deletion.asnumpy().mean()), insertion=float(insertion.asnumpy().mean()),
                  pointing_game=float(pointing_game(maps, boxes).mean()),
                  iosr=float(metrics.iosr(maps, masks).asnumpy().mean()),
                  max_sensitivity=float(np.nanmean(sensitivity)) if np.isfinite(sensitivity).any() else None)
    return scores, deletion_curve.asnumpy().mean(axis=0), insertion_curve.asnumpy().mean(axis=0)


def plot_curves(path, curves):
    """curves.png: the mean deletion and insertion curves {name: (deletion, insertion)}, side by side."""
    names = list(curves)
    charts = [visual.plot_curves(None, np.stack([curves[n][i] for n in names]), labels=names, title=title)
              for i, title in enumerate(("deletion: p vs fraction of the removed half",
                                         "insertion: p vs fraction put back"))]
    visual.save_grid(path, [charts])


def run(output="xaifn-demo", seed=0, num_images=8, methods=METHODS, quick=False, log=print):
    """Run the demo; returns the report dict (also written to output/report.json and .md)."""
    out = pathlib.Path(output)
    out.mkdir(parents=True, exist_ok=True)
    sizes = dict(train=600, epochs=4, ood_epochs=10, masks=300, window=4, stride=2, noisy=2) if quick else \
        dict(train=2000, epochs=3, ood_epochs=30, masks=1000, window=3, stride=1, noisy=5)
    log(f"[1/4] synthetic shapes: {sizes['train']} training images, seed {seed}")
    train_x, train_y, _ = synthetic.make_shapes(seed, sizes["train"])
    test_x, test_y, test_boxes = synthetic.make_shapes(seed + 1, max(num_images, 200))
    log("[2/4] training the classifier")
    start = time.perf_counter()
    net = train_classifier(train_x, train_y, sizes["epochs"], seed, log)
    acc = accuracy(net, test_x, test_y)
    log(f"  held-out accuracy {acc:.3f} ({time.perf_counter() - start:.0f} s)")
    ms.save_checkpoint(net, str(out / "classifier.ckpt"))

    log("[3/4] training the OoD head on the classifier's features")
    features = xaifn.network_view(net, output_features=True)
    feature_batches = [(features(_normalise(train_x[i:i + 100])), ms.Tensor(train_y[i:i + 100]))
                       for i in range(0, len(train_y), 100)]
    params, _, _ = ood.fit(ood.init(seed, net.num_features, len(synthetic.CLASSES)), feature_batches,
                           epochs=sizes["ood_epochs"], decay_every=max(1, sizes["ood_epochs"] // 3))
    ood.save(params, out / "ood_head.ckpt")
    inlier = ood.inlier_fn(params, features)
    ood_auroc = auroc(inlier(_normalise(test_x[:100])).max(axis=1).asnumpy(),
                      inlier(_normalise(synthetic.make_noise(seed, 100))).max(axis=1).asnumpy())
    log(f"  OoD AUROC shapes vs noise {ood_auroc:.3f}")

    log(f"[4/4] explaining {num_images} held-out images with {len(methods)} methods")
    x, boxes = _normalise(test_x[:num_images]), test_boxes[:num_images]
    targets = ms.Tensor(net(x).argmax(axis=1).astype(ms.int32))
    masks = xaifn.RiseMasks(seed, sizes["masks"], test_x.shape[2:])
    activation = nn.Softmax()
    run_method = explainers(net, activation, inlier, masks, window=sizes["window"], stride=sizes["stride"])
    images_u8 = visual.to_uint8_image(test_x[:num_images])
    results, overlays, curves = {}, {}, {}
    for name in methods:
        start = time.perf_counter()
        maps = run_method[name](x, targets).asnumpy()
        seconds = time.perf_counter() - start
        scores, deletion_curve, insertion_curve = judge(net, activation, run_method[name], x, targets, maps,
                                                        boxes, seed, sizes["noisy"])
        curves[name] = (deletion_curve, insertion_curve)
        results[name] = dict(seconds_per_image=seconds / num_images, **scores)
        overlays[name] = visual.overlay(images_u8, maps)[:, 0]
        visual.save_grid(out / f"{name}.png", [list(overlays[name])], cell_size=96)
        log(f"  {name:<16} {seconds / num_images:7.3f} s/image   pointing game {scores['pointing_game']:.2f}"
            f"   deletion {scores['deletion']:.3f}   insertion {scores['insertion']:.3f}")
    plot_curves(out / "curves.png", curves)
    gallery = [[images_u8[i]] + [overlays[m][i] for m in methods] for i in range(num_images)]
    visual.save_grid(out / "gallery.png", gallery, titles=["image"] + list(methods), cell_size=96)
    chance = float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean() / np.prod(test_x.shape[2:]))
    report = dict(seed=seed, quick=quick, train_images=sizes["train"], accuracy=acc, ood_auroc=ood_auroc,
                  rise_masks=sizes["masks"], occlusion_window=sizes["window"],
                  occlusion_stride=sizes["stride"], pointing_game_chance=chance, methods=results,
                  max_sensitivity_perturbations=sizes["noisy"],
                  curves={name: dict(deletion=c[0].tolist(), insertion=c[1].tolist()) for name, c in curves.items()},
                  classes=[c[0] for c in synthetic.CLASSES])
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(_markdown(report))
    log(f"gallery: {(out / 'gallery.png').resolve()}")
    return report


def _markdown(report):
    lines = ["# xaifn demo report", "",
             f"- held-out accuracy: {report['accuracy']:.3f}",
             f"- OoD AUROC (shapes vs noise): {report['ood_auroc']:.3f}",
             f"- pointing-game chance rate (mean box area / image area): {report['pointing_game_chance']:.3f}",
             f"- RISE / RISEPlus masks: {report['rise_masks']}; Occlusion window {report['occlusion_window']}, "
             f"stride {report['occlusion_stride']}", "",
             "Metrics (`xaifn.metrics`, mean over the images): deletion = 1 - auc/2 and insertion = "
             "(1 + auc)/2 with the original package's formulas (a faster probability drop gives a LOWER "
             "deletion score; a faster rise a higher insertion score), pointing game (peak pixel in the "
             "shape's box) and IoSR (share of the salient region, > half the peak, inside the box), "
             f"max-sensitivity exp(-max relative change) over {report['max_sensitivity_perturbations']} "
             "noisy copies U(-0.2, 0.2) (higher = steadier). Curves: curves.png.", "",
             "| method | seconds per image | deletion (lower: faster drop) | insertion (higher) | "
             "pointing game | IoSR | max-sensitivity |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['seconds_per_image']:.3f} | {r['deletion']:.3f} | {r['insertion']:.3f} | "
              f"{r['pointing_game']:.2f} | {r['iosr']:.2f} | "
              f"{'n/a' if r['max_sensitivity'] is None else format(r['max_sensitivity'], '.3f')} |"
              for name, r in report["methods"].items()]
    return "\n".join(lines) + "\n"
