"""explain_dataset and its store: round trip, exact resumption after SIGKILL, refusal of a store
made with other arguments, image folders, msrun with two CPU workers."""
import math
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import mindspore as ms
import mindspore.dataset as ds
import pytest
import zarr
from PIL import Image

import xaifn
from xaifn import dataset_runner, dataset_store

import _dataset_job as job

ROOT = pathlib.Path(__file__).resolve().parents[1]
JOB = pathlib.Path(job.__file__)


def subprocess_env():
    """This checkout first on the path, and this Python's folder first on PATH (msrun workers)."""
    path = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path,
                PATH=os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")]))


def contents(store):
    """{array name: array} and the summary of a store."""
    group = zarr.open_group(str(store), mode="r")
    return dataset_store.arrays(group), group.attrs.get("summary")


def assert_same_store(a, b):
    arrays_a, summary_a = contents(a)
    arrays_b, summary_b = contents(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name, values in arrays_a.items():
        assert values.dtype == arrays_b[name].dtype, name
        assert values.tobytes() == arrays_b[name].tobytes(), f"{name} differs"
    assert summary_a == summary_b


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted single-process run of the job."""
    store = tmp_path_factory.mktemp("reference") / "store"
    return store, job.run(store)


def test_store_round_trip(reference):
    store, summary = reference
    arrays, stored_summary = contents(store)
    assert stored_summary == summary
    images, labels = job.data()
    net = job.TinyNet()
    logits = net(ms.Tensor(images)).asnumpy()
    prediction = logits.argmax(axis=1)
    np.testing.assert_array_equal(arrays["label"], labels)
    np.testing.assert_array_equal(arrays["prediction"], prediction)
    np.testing.assert_array_equal(arrays["target"], prediction)
    assert arrays["done"].all() and arrays["picture"].shape == (job.ROWS, 8, 8, 3)
    for start in range(0, job.ROWS, job.BATCH):  # each block is the method on that batch
        x, t = ms.Tensor(images[start:start + 4]), ms.Tensor(prediction[start:start + 4].astype(np.int32))
        np.testing.assert_array_equal(arrays["maps/gradient"][start:start + 4], xaifn.gradient(net, x, t).asnumpy()[:, 0])
        scores, curves = job.drop(net, x, t, arrays["maps/rise"][start:start + 4][:, None], None)
        np.testing.assert_array_equal(arrays["scores/rise/drop"][start:start + 4], scores)
        np.testing.assert_array_equal(arrays["curves/rise/drop"][start:start + 4], curves)
    # the summary is the mean of the scores, overall and per class explained
    for method in ("gradient", "occlusion", "rise"):
        scores = arrays[f"scores/{method}/drop"]
        entry = summary["methods"][method]["drop"]
        assert entry["count"] == job.ROWS and entry["mean"] == pytest.approx(scores.mean(), rel=1e-12)
        for c in set(prediction.tolist()):
            assert entry["per_class"][str(c)] == pytest.approx(scores[prediction == c].mean(), rel=1e-12)
    assert summary["accuracy"] == pytest.approx((prediction == labels).mean())


def test_resumed_after_sigkill_equals_uninterrupted_run(reference, tmp_path):
    store = tmp_path / "store"
    rng = np.random.default_rng(2024)
    blocks = math.ceil(job.ROWS / job.BATCH)
    seen = []
    for kill in range(3):
        before = done_blocks(store)
        latest = kill + 2   # kill no later than when this many blocks are done: blocks are left to resume
        proc = subprocess.Popen([sys.executable, str(JOB), str(store), "--slow"], env=subprocess_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        if kill == 0:  # anywhere: importing, creating the store, or in a block
            wait_until(store, proc, latest, time.monotonic() + rng.uniform(0.5, 6.0))
        else:          # once a new block is done, at a random point of the next ones
            while done_blocks(store) <= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            wait_until(store, proc, latest, time.monotonic() + rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.append(done_blocks(store))
    assert seen[-1] < blocks, f"the kills came too late to interrupt the run: {seen}"
    result = subprocess.run([sys.executable, str(JOB), str(store)], env=subprocess_env(), capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_store(store, reference[0])


def wait_until(store, proc, latest, when):
    """Sleep until `when`, or until `latest` blocks are done or the process ended (polled every
    20 ms; a slow batch sleeps 250 ms, so the kill lands before another block is written)."""
    while time.monotonic() < when and done_blocks(store) < latest and proc.poll() is None:
        time.sleep(0.02)


def done_blocks(store):
    if not (store / ".zgroup").is_file():
        return -1
    return int(dataset_store.done_blocks(zarr.open_group(str(store), mode="r")).sum())


def test_half_written_block_is_not_complete(reference, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(reference[0], store)
    group = zarr.open_group(str(store), mode="r+")
    group["done"][4:8] = False                # block 1 as if killed before its flag
    group["maps/gradient"][4:8] = 0.0         # ... after some of its arrays
    assert dataset_store.done_blocks(group).tolist() == [True, False, True, True, True, True]
    assert job.run(store) == reference[1]
    assert_same_store(store, reference[0])


def test_progress_bar_says_a_run_resumed(reference, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(reference[0], store)
    zarr.open_group(str(store), mode="r+")["done"][4:8] = False    # block 1 to redo
    job.run(store, progress=True)
    err = capsys.readouterr().err
    assert f"resumed: {job.ROWS - 4} rows were done" in err and f"{job.ROWS}/{job.ROWS}" in err


@pytest.mark.parametrize("change, differing", [
    (dict(targets="label"), "targets"),
    (dict(metrics={}), "metrics"),
    (dict(net=job.TinyNet(seed=1)), "network"),
    (dict(config={"model": "other"}), "config"),
    (dict(method_options=dict(num_masks=17, window=3, stride=2)), "method_options"),  # rise reads num_masks
    (dict(block_rows=8), "block"),
])
def test_store_made_with_other_arguments_is_refused(reference, tmp_path, change, differing):
    store = tmp_path / "store"
    shutil.copytree(reference[0], store)
    kwargs = dict(metrics={"drop": job.drop}, method_options=dict(num_masks=16, window=3, stride=2), progress=False,
                  block_rows=job.BATCH)
    net = change.pop("net", job.TinyNet())
    kwargs.update(change)
    with pytest.raises(ValueError, match=f"other arguments \\(differing: {differing}\\)"):
        xaifn.explain_dataset(net, job.pipeline(), ["gradient", "occlusion", "rise"], store, **kwargs)
    assert_same_store(store, reference[0])


def test_options_no_chosen_method_reads_do_not_refuse_a_store(tmp_path):
    store = tmp_path / "store"
    options = dict(num_masks=16, window=3, stride=2, layer="conv")
    first = xaifn.explain_dataset(job.TinyNet(), job.pipeline(), ["gradient", "occlusion"], store,
                                  method_options=options, block_rows=job.BATCH, progress=False)
    config = zarr.open_group(str(store), mode="r").attrs["config"]
    assert config["method_options"] == dict(chunk=None, stride=2, window=3)  # occlusion's only
    # RISE's masks, GradCAM's layer: read by no chosen method, so the store is resumed (nothing to redo)
    again = xaifn.explain_dataset(job.TinyNet(), job.pipeline(), ["gradient", "occlusion"], store, progress=False,
                                  method_options=dict(options, num_masks=99, seed=5, layer="other"),
                                  block_rows=job.BATCH)
    assert again == first
    with pytest.raises(ValueError, match="differing: method_options"):  # occlusion reads its window
        xaifn.explain_dataset(job.TinyNet(), job.pipeline(), ["gradient", "occlusion"], store, progress=False,
                              method_options=dict(options, window=2), block_rows=job.BATCH)


def test_blocks_of_several_batches_store_the_same_values(reference, tmp_path):
    arrays = contents(reference[0])[0]
    for block_rows, blocks in ((12, 2), (None, 1)):  # the default: one block for these small maps
        store = tmp_path / f"store{block_rows}"
        assert job.run(store, block_rows=block_rows) == reference[1]
        group = zarr.open_group(str(store), mode="r")
        assert group["maps/rise"].chunks[0] == job.ROWS // blocks and len(dataset_store.done_blocks(group)) == blocks
        other = dataset_store.arrays(group)
        assert sorted(other) == sorted(arrays)
        for name, values in arrays.items():
            assert values.tobytes() == other[name].tobytes(), name
    with pytest.raises(ValueError, match="`block_rows` must be a multiple of the dataset's batch size 4, got 6"):
        job.run(tmp_path / "bad", block_rows=6)
    assert not (tmp_path / "bad").exists()


def test_a_failed_write_stops_the_run(tmp_path, monkeypatch):
    write = dataset_store.write_block

    def failing(group, start, rows, handles=None):
        if start == 2 * job.BATCH:
            raise OSError("disk full")
        write(group, start, rows, handles)
    monkeypatch.setattr(dataset_store, "write_block", failing)
    with pytest.raises(OSError, match="disk full"):   # raised in the writer thread, reported by the run
        xaifn.explain_dataset(job.TinyNet(), job.pipeline(), ["gradient"], tmp_path / "store", block_rows=job.BATCH,
                              progress=False)
    done = dataset_store.done_blocks(zarr.open_group(str(tmp_path / "store"), mode="r"))
    assert done[:2].all() and not done[2] and "summary" not in zarr.open_group(str(tmp_path / "store")).attrs


def test_partial_files_of_killed_writers_are_removed(reference, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(reference[0], store)
    group = zarr.open_group(str(store), mode="r+")
    group["done"][4:8] = False                                     # block 1 as if killed while writing
    hex32 = "0123456789abcdef" * 2
    partials = {name: store / name for name in (
        f"maps/gradient/1.0.0.{hex32}.partial", f"scores/rise/drop/1.{hex32}.partial",   # block 1: shard 1's
        f"maps/gradient/3.0.0.{hex32}.partial",                                            # block 3: done
        f"maps/rise/0.0.0.{hex32}.partial", f".zattrs.{hex32}.partial")}                  # shard 0's
    for path in partials.values():
        path.write_bytes(b"torn")
    old_build, live_build = (tmp_path / f".store.{c * 32}.partial" for c in "ab")  # store creation folders
    for folder, when in ((old_build, time.time() - 3600), (live_build, time.time() + 3600)):
        folder.mkdir()
        os.utime(folder, (when, when))
    job.run(store, num_shards=2, shard_id=1)   # redoes block 1: removes block 1's partials only
    left = sorted(name for name, path in partials.items() if path.exists())
    assert left == sorted(list(partials)[2:]) and old_build.exists()
    job.run(store, num_shards=2, shard_id=0)   # nothing to redo; the run is complete: removes every one
    assert not any(path.exists() for path in partials.values()) and not list(store.rglob("*.partial"))
    assert not old_build.exists() and live_build.exists()
    assert_same_store(store, reference[0])


def test_shards_run_apart_fill_the_same_store(reference, tmp_path):
    store = tmp_path / "store"
    first = job.run(store, num_shards=2, shard_id=1)
    assert first["rows"] == job.ROWS // 2 and "summary" not in zarr.open_group(str(store)).attrs
    assert job.run(store, num_shards=2, shard_id=0) == reference[1]
    assert_same_store(store, reference[0])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_msrun_two_cpu_workers_equal_one_process(reference, tmp_path):
    msrun = pathlib.Path(sys.executable).parent / "msrun"
    if not msrun.is_file():
        pytest.skip("msrun (MindSpore's launcher) is not installed beside this Python")
    store, logs = tmp_path / "store", tmp_path / "logs"
    result = subprocess.run(
        [str(msrun), "--worker_num=2", "--local_worker_num=2", "--master_addr=127.0.0.1",
         f"--master_port={free_port()}", f"--log_dir={logs}", "--join=True", str(JOB), str(store)],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
    worker_logs = "".join(p.read_text(errors="replace")[-2000:] for p in sorted(logs.glob("worker_*.log")))
    assert result.returncode == 0, worker_logs
    assert_same_store(store, reference[0])
    for rank in (0, 1):  # each worker explained its half of the rows, and knew its rank
        assert f"EXPLAINED {job.ROWS // 2} SHARD 2 {rank}" in (logs / f"worker_{rank}.log").read_text(errors="replace")


def test_image_folder_with_class_folders(tmp_path):
    rng = np.random.default_rng(0)
    for name, mode in (("cat/a.png", "RGB"), ("cat/b.png", "L"), ("dog/c.jpg", "RGB"), ("dog/d.png", "RGB"),
                       ("dog/e.png", "RGB")):
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shape = (10 + len(name), 12, 3) if mode == "RGB" else (9, 9)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(tmp_path / "data" / name)
    source = dataset_runner.ImageFiles.from_folder(tmp_path / "data", (8, 8), (0.5,), (0.25,))
    assert source.class_names == ["cat", "dog"] and source.labels.tolist() == [0, 0, 1, 1, 1]
    assert source.conversions() == ["1 grayscale image(s): their one channel repeated to 3"]
    summary = xaifn.explain_dataset(job.TinyNet(), tmp_path / "data", ["gradient"], tmp_path / "store",
                                    size=8, mean=(0.5,), std=(0.25,), batch_size=2, targets="label")
    group = zarr.open_group(str(tmp_path / "store"), mode="r")
    assert summary["rows"] == 5 and group["target"][:].tolist() == [0, 0, 1, 1, 1]
    assert group.attrs["class_names"] == ["cat", "dog"]
    x, label = source[2]
    expected = xaifn.gradient(job.TinyNet(), ms.Tensor(x[None]), int(label)).asnumpy()[0, 0]
    np.testing.assert_allclose(group["maps/gradient"][2], expected, rtol=1e-6)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(methods=[]), TypeError, "`methods` must be a non-empty list"),
    (dict(methods=["magic"]), ValueError, "unknown method 'magic'"),
    (dict(methods=["rise_plus"]), ValueError, "needs method_options\\['inlier'\\]"),
    (dict(method_options=dict(depth=3)), TypeError, "unknown key\\(s\\) depth"),
    (dict(targets="best"), ValueError, "`targets` must be 'prediction' or 'label'"),
    (dict(metrics=[lambda *a: 0]), TypeError, "`metrics`: every metric must be a function with a name"),
    (dict(methods=[lambda x, t: x]), ValueError, "not a lambda"),
    (dict(dataset="no/such/folder", size=8), FileNotFoundError, "does not exist"),
    (dict(dataset="no/such/folder"), ValueError, "`size`"),
    (dict(dataset=job.pipeline().shuffle(4)), ValueError, "must not shuffle"),
    (dict(dataset=ds.NumpySlicesDataset((job.data()[0],), shuffle=False, num_shards=2, shard_id=0).batch(4)),
     ValueError, "must not be sharded"),
    (dict(dataset=job.pipeline().repeat(2)), ValueError, "one to one"),
    (dict(dataset=[1, 2]), TypeError, "mindspore.dataset pipeline"),
    (dict(num_shards=2), ValueError, "together"),
    (dict(num_shards=2, shard_id=2), ValueError, "shard_id"),
])
def test_bad_arguments_are_clear_errors(tmp_path, kwargs, error, message):
    args = dict(net=job.TinyNet(), dataset=job.pipeline(), methods=["gradient"], store=tmp_path / "store")
    args.update(kwargs)
    with pytest.raises(error, match=message):
        xaifn.explain_dataset(args.pop("net"), args.pop("dataset"), args.pop("methods"), args.pop("store"), **args)
    assert not (tmp_path / "store").exists()


def test_exact_partials_sum_exactly():
    values = [1e16, 1.0, -1e16, 3.0, 1e-3] * 7
    partials = dataset_runner.exact_partials(values)
    assert math.fsum(partials) == math.fsum(values)
    pieces = [float(p) for v in partials for p in dataset_runner._split32(v)]  # pylint: disable=protected-access
    assert math.fsum(pieces) == math.fsum(values)


def test_report_of_a_store_with_metrics(reference, tmp_path):
    from xaifn.dataset_report import write_report
    html_path, md_path = write_report(reference[0], tmp_path / "report", gallery=3)
    text, page = md_path.read_text(), html_path.read_text()
    arrays, summary = contents(reference[0])
    for method in ("gradient", "occlusion", "rise"):
        mean = summary["methods"][method]["drop"]["mean"]
        assert f"| {method} | {mean:.4f} ({job.ROWS}) |" in text       # per-method table
        assert f"gallery_{method}.png" in page and (tmp_path / "report" / f"gallery_{method}.png").is_file()
    target = arrays["target"]
    for c in sorted(set(target.tolist())):                               # per-class table
        rise = arrays["scores/rise/drop"][target == c].mean()
        assert f"| {c} | {int((target == c).sum())} |" in text and f"{rise:.4f}" in text
    assert (tmp_path / "report" / "curves_drop.png").is_file() and "curves_drop.png" in text
    with Image.open(tmp_path / "report" / "gallery_rise.png") as image:  # best and worst rows of 3
        assert image.height > 2 * dataset_report_cell()


def test_report_ranks_a_lower_is_better_metric_ascending(tmp_path):
    def loss(net, x, t, maps, masks):  # pylint: disable=unused-argument
        return maps.reshape(len(maps), -1).max(axis=1)
    loss.lower_is_better = True
    store = tmp_path / "store"
    xaifn.explain_dataset(job.TinyNet(), job.pipeline(), ["gradient"], store, metrics={"peak": loss, "drop": job.drop},
                          progress=False)
    assert zarr.open_group(str(store), mode="r").attrs["lower_is_better"] == ["peak"]
    from xaifn.dataset_report import best_first, write_report
    text = write_report(store, tmp_path / "report")[1].read_text()
    assert "Ranked by peak (lower is better)." in text and "| method | peak (lower is better) | drop (higher is better) |" in text
    scores = np.array([0.3, np.nan, 0.1, 0.3, 0.2])
    assert best_first(scores, True) == [2, 4, 0, 3] and best_first(scores, False) == [0, 3, 4, 2]
    assert dataset_runner.lower_is_better(dataset_runner.named_metric("deletion", None))
    assert not dataset_runner.lower_is_better(dataset_runner.named_metric("insertion", None))


def dataset_report_cell():
    from xaifn.dataset_report import GALLERY_CELL
    return GALLERY_CELL


def test_the_users_pipeline_is_left_as_it_was(tmp_path):
    data = job.pipeline()
    job_net = job.TinyNet()
    xaifn.explain_dataset(job_net, data, ["gradient"], tmp_path / "store", num_shards=3, shard_id=1,
                          progress=False)
    rows = sum(len(batch[0]) for batch in data.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert rows == job.ROWS and not data.is_sharded()


def test_named_metrics_are_those_of_xaifn_metrics(tmp_path):
    from xaifn import metrics
    images, labels = job.data()
    images, labels = images[:8], labels[:8]
    regions = (np.random.default_rng(3).random((8, 1, 8, 8)) > 0.7).astype(np.float32)
    data = ds.NumpySlicesDataset((images, labels, regions), column_names=["image", "label", "mask"],
                                 shuffle=False).batch(4)
    net = job.TinyNet()
    xaifn.explain_dataset(net, data, ["gradient"], tmp_path / "store", metrics=["deletion", "pointing_game"],
                          progress=False)
    group = zarr.open_group(str(tmp_path / "store"), mode="r")
    for start in (0, 4):
        x = ms.Tensor(images[start:start + 4])
        t = ms.Tensor(group["target"][start:start + 4].astype(np.int32))
        maps = xaifn.gradient(net, x, t).asnumpy()
        scores, curves = metrics.deletion_auc(net, ms.nn.Softmax(), x, t, maps, return_curve=True)
        np.testing.assert_array_equal(group["scores/gradient/deletion"][start:start + 4], scores.asnumpy())
        np.testing.assert_array_equal(group["curves/gradient/deletion"][start:start + 4], curves.asnumpy())
        hits = metrics.pointing_game(maps, regions[start:start + 4]).asnumpy()
        np.testing.assert_array_equal(group["scores/gradient/pointing_game"][start:start + 4], hits)


@pytest.mark.parametrize("metrics, message", [
    (["pointing_game"], "needs ground-truth regions"),
    (["auc"], "unknown metric 'auc'"),
])
def test_named_metric_errors(tmp_path, metrics, message):
    with pytest.raises(ValueError, match=message):
        xaifn.explain_dataset(job.TinyNet(), job.pipeline(), ["gradient"], tmp_path / "store", metrics=metrics)
    assert not (tmp_path / "store").exists()
