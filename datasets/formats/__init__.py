"""Format readers, one module a format; :mod:`datasets.files` lists them in ``READERS``.

- :mod:`datasets.formats.npy`: ``.npy`` arrays;
- :mod:`datasets.formats.netcdf`: NetCDF 3/4, Zarr folders, zipped Zarr;
- :mod:`datasets.formats.video`: mp4, avi, mov, mkv, webm, gif;
- :mod:`datasets.formats.taxibj`: the TaxiBJ / BikeNYC / TaxiNYC HDF5 layout;
- :mod:`datasets.formats.radar`: KNMI/ODIM HDF5 radar files and zips of radar files.

Each reader returns the layout of :mod:`datasets.layout` and raises only :class:`DatasetError`.
"""
