"""`asbunet segment`: person masks and effects for image files, folders, videos and cameras."""
