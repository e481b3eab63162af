"""The bench harness: what the benchmark scripts in bench/ share, so that each of them is a page.

    data       data folders built from ../shared/data (CIFAR-10N, MNIST, imagenette) and the digit scans, with the truth
    judge      review lists, flags and rankings scored against the truth
    report     markdown tables and contact sheets
    run        `clean` through the Python API, members' models, child processes, timing and resident memory
    internals  the datacleaner internals the benchmarks use, named in one place

A script imports what it needs from these modules (`from harness.data import cifar_tree`); bench/ is on
the import path when a script in it runs.
"""
