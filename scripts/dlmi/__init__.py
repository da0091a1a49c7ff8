"""dlmi: the science behind dlmi-workflow, arranged by the stage a module serves.

- `io`, `labels`, `seeding`, `device`, `figures`: image files, the label tables, seeds, the torch device,
  QC mosaics; used by every stage.
- `spatial`: world grids and 4x4 matrices (`grid`), resampling (`resampling`), header orientation.
- `sim`: the simulated study: participants and effects (`cohort`), the head anatomy (`anatomy`).
- `recon`: each modality's forward model (what the scanner measures) and its reconstruction: `mri`,
  `ct`, `pet`, and the parallel-beam `projector` that CT and PET share.
- `register`: rigid and affine (`linear`), diffeomorphic (`svf`), ITK/ANTs transform files (`itk`).
- `segment`: tissue classes and regions (`atlas`: template labels and intensities).
- `analysis`: regional features, models and their validation, quality metrics.

Importing a package imports nothing heavy: torch is imported only by the modules whose kernels need it.
dlmi never imports the workflow support (`dlmi_workflow`).
"""
