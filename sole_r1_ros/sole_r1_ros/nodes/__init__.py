"""Thin ROS 2 nodes wiring the ROS-free layers to topics, services and actions."""
