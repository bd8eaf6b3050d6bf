"""The kubelet device-plugin API v1beta1: `api.proto` and the modules grpcio-tools generates from it.

`api_pb2*.py` are generated (`make deviceplugin-api`) and committed; never edit them by hand.
"""

#: The API version a plugin states when it registers.
VERSION = "v1beta1"
