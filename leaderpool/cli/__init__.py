"""The command-line tools: ``leaderpool-cli`` (:mod:`.main`) with its commands (:mod:`.status`,
:mod:`.doctor`, :mod:`.demo`), and the argument parsing (:mod:`.args`) and log set-up
(:mod:`.logs`) it shares with the worker."""
