"""One script per library, each a plain, idiomatic use of it, all speaking the protocol of
:mod:`benchmarks.contenders.common`. :mod:`benchmarks.registry` knows how to start and observe them."""
