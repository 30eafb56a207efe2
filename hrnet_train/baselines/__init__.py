"""No-learning and external baselines scored with the project's own metric: the training set's mean
pose (mean_pose, OKS AP) and mean face shape (mean_shape, NME), and MediaPipe BlazePose (mediapipe,
optional extra in its own venv).

They sit above evaluation and inference (they use both), so those two never import each other.
"""
