// The image builders' error type, in a leaf module so the build lock and the
// builders can share it without importing each other.

/** A guest image could not be built (a download, a tool, a lock): one readable line. */
export class ImageBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageBuildError';
  }
}
