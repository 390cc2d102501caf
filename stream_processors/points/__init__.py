"""Channel points and predictions: the ledger worker, the prediction worker, the earning workers."""
