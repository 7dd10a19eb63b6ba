"""The ncnn engine: a packaged model's `.param/.bin` graph in the ncnn wheel, on Vulkan or the CPU."""
