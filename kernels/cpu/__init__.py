"""CPU kernels, one module per op family. Import the family you need:
``from fastnn.kernels.cpu import affine``."""
