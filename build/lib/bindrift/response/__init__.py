"""Response: evidence capture, actions on processes, containers, files and pods, and prevention."""
