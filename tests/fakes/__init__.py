"""Local fakes of the platforms, speaking their real wire formats on 127.0.0.1."""
