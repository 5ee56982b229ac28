"""Frames from your own code: `VideoSegmenter` (`stream`) with its `FrameOptions` (`options`), the temporal smoothers
(`temporal`) and their metric (`flicker`), the main person (`regions`), the compositing alpha (`matte`), the output
kinds of a frame (`render`) and the background effects (`effects`). Above `asbunet.inference`, below the commands: it
knows nothing of files, folders or the command line."""
