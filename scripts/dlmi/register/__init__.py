"""Registration: linear (rigid, affine), diffeomorphic (SVF), and ITK/ANTs transform files."""
