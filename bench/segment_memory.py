"""Peak memory of fastblur-segment on one large image (the issue's 4000x6000 case).

    python bench/segment_memory.py [HEIGHT WIDTH]

The path of the CLI (masks kept packed, streamed into the .npz), untrained weights,
score threshold 0 (100 detections kept: torchvision's most) and the default --max-size
1333. Prints the peak RSS of the process.
"""
import os
import resource
import sys
import tempfile

import numpy as np
import torch

from fastblur.sbdd.segment import _segment, build_model, save_instances


def main(height=4000, width=6000):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model(weights="none")
    model.roi_heads.score_thresh = 0.0
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    result = next(_segment([image], model, 0.0, None, 1333, 1, "cpu", packed=True))
    with tempfile.TemporaryDirectory() as folder:
        save_instances(os.path.join(folder, "image.npz"), result)
        size = os.path.getsize(os.path.join(folder, "image.npz"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{height}x{width}: {len(result['scores'])} masks ({size / 2**20:.1f} MiB file), peak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
