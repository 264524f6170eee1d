"""Benchmarks that print the figures the issues set targets for (never timed unit tests): `python -m benchmarks`.

Each benchmark works in a temporary folder on generated data and returns `BenchResult`s; every row
carries the target the issues set (or says that none was set) and, where it is a number, whether it
was met. Networks run on `resolve_device("auto")`, so the same table can be made on a GPU.

These are scripts outside the library: they start processes and servers, drive chromium, sample /proc
and seed torch globally, which `core` never does. Modules, each importing only the ones below it:

    __main__    the command line: run every benchmark, print the table, save JSON
    sessions    several browser sessions at once against one: latency, server memory, leaks between sessions
    soak        a compressed day: sessions opening and closing, server memory, file descriptors, threads; and
                the steps of one session in a browser, which sessions runs several of at once
    training    the demo preset and SPEC 2.7's training epoch and step rate
    latency     predict and locate one clip, warm
    embedding   embed_chunks throughput with and without the malloc options (core.runtime.process)
    projection  UMAP maps of 10 000 to 150 000 embeddings
    corpus      demo corpus generation and feature extraction
    scale       toward MSP-Podcast size: synthetic stores (synthetic_store), embedding, K-means, data path
    suspects    the suspicious-label ranking scored against a known 10 % of corrupted train labels
    app         `streamlit run app` until chromium shows the first map
    map         the latent map at MSP-Podcast size in chromium: load, recolour, selection, server memory
    server      a `streamlit run app` server on a free port, and its health check
    browser     Debian's chromium: where it is, its flags, whether it can be driven here
    memory      peak RSS of a benchmark in a process of its own, or of a process tree
    inputs      untrained networks and noise clips: what the timings run on
    results     BenchResult and its table and JSON
    machine     what the figures were measured on, and its sgemm rate
"""
