"""The local web app: compose, listen, see and download (``gancomposer serve``)."""
