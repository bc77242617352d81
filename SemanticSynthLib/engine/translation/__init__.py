"""Traceable modality translation (Plasticine in 3D): intensity translator + diffeomorphic spatial transform."""
