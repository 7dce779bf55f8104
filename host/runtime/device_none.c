// The device layer of a build without CUDA: no devices, clear refusals.
#include "device.h"

bool device_cuda_built(void) { return false; }
int device_count(void) { return 0; }

static Status no_cuda(void) {
    return status_fail(ST_UNSUPPORTED, "this binary was built without CUDA");
}

Status device_describe(int index, char *buf, size_t n) {
    (void)index; (void)buf; (void)n;
    return no_cuda();
}
Status device_alloc_zeroed(Device dev, void **ptr, size_t bytes) {
    (void)dev; (void)bytes;
    *ptr = NULL;
    return no_cuda();
}
void device_free(Device dev, void *ptr) { (void)dev; (void)ptr; }
Status device_copy_to(Device dev, void *dst, const void *src, size_t bytes) {
    (void)dev; (void)dst; (void)src; (void)bytes;
    return no_cuda();
}
Status device_copy_from(Device dev, void *dst, const void *src, size_t bytes) {
    (void)dev; (void)dst; (void)src; (void)bytes;
    return no_cuda();
}
Status device_copy_to_2d(Device dev, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                         size_t rows) {
    (void)dev; (void)dst; (void)dst_pitch; (void)src; (void)src_pitch; (void)width; (void)rows;
    return no_cuda();
}
