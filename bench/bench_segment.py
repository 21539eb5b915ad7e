"""fastblur-segment on the CPU (GPU where one exists): 720p images per second.

The network is torchvision's ``maskrcnn_resnet50_fpn_v2`` with untrained weights (no
download here) and its score threshold at 0, so that it always returns 100 detections
and the mask head runs on all of them: the cost of a trained network on a crowded
image, an upper bound. Peer: the network's forward pass alone on the same tensor, so
the ratio is what fastblur adds (resizing, mask selection and resizing back).
Threads: ``FASTBLUR_NUM_THREADS`` (1 by default in ``bench/``) sets torch's.
"""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from fastblur.sbdd.segment import build_model, segment_images  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(int(os.environ.get("FASTBLUR_NUM_THREADS", "1")))
    torch.manual_seed(0)
    network = build_model(weights="none")
    network.roi_heads.score_thresh = 0.0  # 100 detections: the mask head's full cost
    return network


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)


@pytest.mark.benchmark(group="segment-720p")
def bench_segment_images(benchmark, model, image):
    benchmark.extra_info["threads"] = torch.get_num_threads()
    result = benchmark.pedantic(lambda: next(segment_images([image], model, score_threshold=0.0)),
                                rounds=3, warmup_rounds=1)
    assert result["pred_masks"].shape[1:] == (720, 1280)


@pytest.mark.benchmark(group="segment-720p")
def bench_forward_pass_peer(benchmark, model, image):
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    with torch.inference_mode():
        benchmark.pedantic(lambda: model([tensor]), rounds=3, warmup_rounds=1)
