"""Reports of a dataset explanation store (`xaifn report STORE`): HTML and Markdown.

`write_report(store, output)` reads a store written by `xaifn.explain_dataset` and writes
`report.html`, `report.md` and the pictures they show into `output`:

* per-method score table: the mean of each metric (over finite scores) and how many rows count;
* per-class breakdown: the mean of each metric per class explained;
* mean deletion / insertion (or any metric's) curves per method, where the metrics gave curves;
* a gallery per method of the best and the worst explained images by the first metric (higher is
  better, except for the metrics the store lists as lower-is-better: the original's deletion
  score), each overlay captioned with its row and score; without metrics, the first rows.
"""
import html
import pathlib

import numpy as np
import zarr

from xaifn import visual

#: Side, in pixels, of a gallery picture (pictures are scaled up to it, nearest neighbour).
GALLERY_CELL = 112


def write_report(store, output, gallery=4):
    """Write report.html and report.md (and their pictures) for `store` into `output`; return
    the two paths."""
    path = pathlib.Path(store)
    if not path.exists():
        raise FileNotFoundError(f"`store` {str(store)!r} does not exist.")
    if not (path / ".zgroup").is_file():
        raise FileNotFoundError(f"`store` {str(store)!r} is not an xaifn dataset store (no .zgroup).")
    if isinstance(gallery, bool) or not isinstance(gallery, int) or gallery < 1:
        raise ValueError(f"`gallery` must be a positive int (images per row), got {gallery!r}.")
    group = zarr.open_group(str(path), mode="r")
    out = pathlib.Path(output)
    out.mkdir(parents=True, exist_ok=True)
    done = group["done"][:]
    if not done.any():
        raise ValueError(f"`store` {str(store)!r} holds no finished rows yet.")
    attrs = group.attrs.asdict()
    sections = [_overview(group, attrs, done)]
    if attrs["metrics"]:
        sections.append(_score_table(group, attrs, done))
        sections.append(_class_table(group, attrs, done))
    sections += [s for s in (_curves(group, attrs, done, out),) if s]
    sections.append(_gallery(group, attrs, done, out, gallery))
    html_path, md_path = out / "report.html", out / "report.md"
    md_path.write_text("# xaifn dataset report\n\n" + "\n".join(_markdown(s) for s in sections))
    html_path.write_text(_html(sections))
    return html_path, md_path


# a section is (title, [blocks]); a block is ("text", str) | ("table", header, rows) | ("image", file, alt)

def _overview(group, attrs, done):
    config = attrs["config"]
    lines = [f"rows explained: {int(done.sum())} of {len(done)}",
             f"methods: {', '.join(attrs['methods'])}",
             f"metrics: {', '.join(attrs['metrics']) or 'none'}",
             f"targets: the {config['targets']} of each sample; input {' x '.join(map(str, config['input']))}"]
    labels, predictions = group["label"][:][done], group["prediction"][:][done]
    if (labels >= 0).any():
        known = labels >= 0
        lines.append(f"accuracy: {(labels[known] == predictions[known]).mean():.3f} on {int(known.sum())} labelled rows")
    return "Overview", [("text", line) for line in lines]


def _scores(group, method, metric, done):
    scores = group[f"scores/{method}/{metric}"][:]
    return np.where(done, scores, np.nan)


def _mean(values):
    finite = values[np.isfinite(values)]
    return (f"{finite.mean():.4f}" if len(finite) else "-"), len(finite)


def _lower_is_better(attrs, metric):
    """Whether smaller scores of `metric` are better (stores written before the store recorded it:
    the named deletion metric)."""
    return metric in attrs.get("lower_is_better", ["deletion"])


def best_first(scores, lower_is_better):
    """Indices of the finite `scores`, best first (ties in row order)."""
    order = np.argsort(scores if lower_is_better else -scores, kind="stable")
    return [int(i) for i in order if np.isfinite(scores[i])]


def _heading(attrs, metric):
    return f"{metric} ({'lower' if _lower_is_better(attrs, metric) else 'higher'} is better)"


def _score_table(group, attrs, done):
    rows = []
    for method in attrs["methods"]:
        cells = [_mean(_scores(group, method, metric, done)) for metric in attrs["metrics"]]
        rows.append([method] + [f"{m} ({n})" for m, n in cells])
    header = ["method"] + [_heading(attrs, metric) for metric in attrs["metrics"]]
    return "Scores per method (mean over rows, count)", [("table", header, rows)]


def _class_name(attrs, c):
    names = attrs.get("class_names")
    return f"{c} {names[c]}" if names and c < len(names) else str(c)


def _class_table(group, attrs, done):
    target = group["target"][:]
    classes = sorted(set(target[done].tolist()))
    blocks = []
    for metric in attrs["metrics"]:
        rows = [[_class_name(attrs, c), str(int(((target == c) & done).sum()))]
                + [_mean(_scores(group, m, metric, done)[target == c])[0] for m in attrs["methods"]]
                for c in classes]
        blocks.append(("text", f"{_heading(attrs, metric)}, per class explained:"))
        blocks.append(("table", ["class", "rows"] + attrs["methods"], rows))
    return "Scores per class", blocks


def _curves(group, attrs, done, out):
    blocks = []
    for metric in attrs["metrics"]:
        names = [m for m in attrs["methods"] if f"curves/{m}/{metric}" in group]
        if not names:
            continue
        means = np.stack([np.nanmean(group[f"curves/{m}/{metric}"][:][done], axis=0) for m in names])
        file = f"curves_{metric}.png"
        visual.plot_curves(out / file, means, labels=names, title=f"mean {metric} curve", y_range=None)
        blocks.append(("image", file, f"mean {metric} curve per method"))
        header = ["method"] + [f"step {j}" for j in range(means.shape[1])]
        blocks.append(("table", header, [[n] + [f"{v:.3f}" for v in row] for n, row in zip(names, means)]))
    return ("Curves (mean over rows)", blocks) if blocks else None


def _cell(picture, saliency, caption):
    over = visual.overlay(picture[None], saliency[None, None])[0, 0]
    scale = max(1, GALLERY_CELL // max(over.shape[:2]))
    big = np.repeat(np.repeat(over, scale, axis=0), scale, axis=1)
    return visual.captioned(big, caption)


def _gallery(group, attrs, done, out, count):
    rows_done = np.flatnonzero(done)
    metric = attrs["metrics"][0] if attrs["metrics"] else None
    blocks = [("text", f"Ranked by {_heading(attrs, metric)}." if metric else
               "No metrics in this store: the first rows.")]
    pictures = group["picture"]
    for method in attrs["methods"]:
        maps = group[f"maps/{method}"]
        if metric:
            scores = _scores(group, method, metric, done)
            ranked = best_first(scores, _lower_is_better(attrs, metric))
            lines = [("best", ranked[:count]), ("worst", ranked[::-1][:count])]
        else:
            scores, lines = None, [("first", rows_done[:count])]
        grid, labels = [], []
        for label, picked in lines:
            if len(picked):
                grid.append([_cell(pictures[i], maps[i], f"#{i} {scores[i]:.3f}" if metric else f"#{i}")
                             for i in picked])
                labels.append(label)
        if grid:
            file = f"gallery_{method}.png"
            visual.save_grid(out / file, grid, row_labels=labels)
            blocks.append(("text", f"{method}:"))
            blocks.append(("image", file, f"{method}: " + ", ".join(labels) + " explained images"))
    return "Gallery", blocks


def _markdown(section):
    title, blocks = section
    lines = [f"## {title}", ""]
    for block in blocks:
        if block[0] == "text" and block[1].endswith(":"):
            lines += ["", block[1]]
        elif block[0] == "text":
            lines += [f"- {block[1]}"]
        elif block[0] == "table":
            _, header, rows = block
            lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
        else:
            lines += ["", f"![{block[2]}]({block[1]})"]
    return "\n".join(lines) + "\n"


def _html(sections):
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>xaifn dataset report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
             "td:first-child,th:first-child{text-align:left}</style></head><body>",
             "<h1>xaifn dataset report</h1>"]
    for title, blocks in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for block in blocks:
            if block[0] == "text":
                parts.append(f"<p>{html.escape(block[1])}</p>")
            elif block[0] == "table":
                _, header, rows = block
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
                parts.append("</table>")
            else:
                parts.append(f"<p><img src='{html.escape(block[1])}' alt='{html.escape(block[2])}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

