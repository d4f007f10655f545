"""Pictures for people: annotated frames (rviz, videos) and learning-curve plots."""
