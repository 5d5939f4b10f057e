{
  "targets": [
    {
      "target_name": "mood_native",
      "sources": ["<!@(node scripts/torch-paths.js sources)"],
      "include_dirs": [
        "native",
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/torch-paths.js include)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "_GLIBCXX_USE_CXX11_ABI=<!(node scripts/torch-paths.js abi)",
        "MOOD_TORCH_VERSION_STRING=\"<!(node scripts/torch-paths.js version)\"",
        "<!(node scripts/torch-paths.js gloo)",
        "MOOD_HAVE_LIBJPEG=1",
        "MOOD_HAVE_LIBPNG=1"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wno-unused-parameter"],
      "libraries": [
        "-L<!(node scripts/torch-paths.js libdir)",
        "-Wl,-rpath,<!(node scripts/torch-paths.js libdir)",
        "-ltorch", "-ltorch_cpu", "-lc10",
        "-ljpeg", "-lpng"
      ]
    }
  ]
}
