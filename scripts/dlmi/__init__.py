"""dlmi: the numerical library behind dlmi-workflow.

Modules are named after the field (ct, pet, mri, registration, segmentation, ...). Importing the package
imports nothing heavy: torch is imported only by the modules whose kernels need it, so rules that do not
compute with torch start fast.
"""
