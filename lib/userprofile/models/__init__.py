"""Models: segmentation (KMeans) and purchase propensity (LogisticRegression) as MLlib
pipelines; ``registry`` says where models live and which serves a snapshot; ``step`` trains."""
