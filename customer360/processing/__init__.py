"""Row-level processing shared by the zones: streaming readers, the contract evaluator, the gate verdict."""
