"""
Backend timings as a bar chart
==============================

``fastblur-bench --plot FILE.png`` draws its report: one panel per case and thread
count, one bar per method, each the ratio of its time to ``scipy.signal.fftconvolve``
of one kernel timed in the same run (lower is faster; the dotted line is the peer). The
figures of :doc:`/guide/benchmarks` are this report at 720p, best of 7; here a small
image and one repeat keep the build quick, so the bars are noisy.
"""
import os
import tempfile

import matplotlib.pyplot as plt

from fastblur.cli import bench

with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "bench.png")
    bench.main(["--height", "240", "--width", "320", "--repeat", "1", "--threads", "1",
                "--cases", "sbdd", "uniform15", "--backends", "numpy", "fftw", "native", "auto",
                "--plot", path])
    chart = plt.imread(path)

# %%
figure = plt.figure(figsize=(chart.shape[1] / 100, chart.shape[0] / 100))
figure.figimage(chart)
plt.show()
