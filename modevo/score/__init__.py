"""Score: pair accuracy of a model honouring the contract, every layer in one pass, baselines and CIs."""
