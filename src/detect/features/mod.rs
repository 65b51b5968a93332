//! Methods on the penultimate features: Mahalanobis, relative Mahalanobis, KNN, ViM, ReAct, ASH,
//! SCALE, DICE and GradNorm.
