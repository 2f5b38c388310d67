"""Running one training run: settings (config, schedule, recipes), set-up and validation (setup),
opening and resuming (resume), the training loop (trainer), scoring (scoring), and the run folder's
files (run_folder, checkpoint, files)."""
