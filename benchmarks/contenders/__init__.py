"""One script per alternative library (leaderpool itself runs as its worker,
``python -m leaderpool.worker --json-events``), each a plain, idiomatic use of it, all speaking the protocol of
:mod:`benchmarks.contenders.common`. :mod:`benchmarks.registry` knows how to start and observe them."""
