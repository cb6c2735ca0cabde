#!/bin/sh
# prebuildify runs "$PREBUILD_NODE_GYP rebuild --target=.. --devdir=.. --arch=.. --release".
# We ignore node-gyp's arguments and build with cmake-js; the .node lands in build/Release/, where
# prebuildify looks for it. Extra CMake options come from $CMAKE_JS_FLAGS.
set -e
exec npx --no-install cmake-js rebuild $CMAKE_JS_FLAGS
