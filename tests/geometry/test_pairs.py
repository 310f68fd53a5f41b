

def test_lidar_pairs_need_only_a_camera_without_pixels():
    import torch

    from ppkt.geometry import Camera, lidar_camera_pairs

    points = torch.tensor([[0.0, 0.0, 2.0], [0.5, 0.0, 2.0], [0.0, 0.0, -2.0]])
    K = torch.tensor([[10.0, 0.0, 8.0], [0.0, 10.0, 6.0], [0.0, 0.0, 1.0]])
    pairs = lidar_camera_pairs(points, [Camera(K, torch.eye(4), (12, 16))], min_depth=1.0)
    assert pairs.point_index.tolist() == [0, 1]  # the point behind the camera has no pixel
    torch.testing.assert_close(pairs.uv, torch.tensor([[8.0, 6.0], [10.5, 6.0]]))
