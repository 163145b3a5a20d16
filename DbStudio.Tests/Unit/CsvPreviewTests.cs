// The import dialog's preview: the header, the first rows, and a type per column inferred from the file — always one of
// the panel's 13 types.
using System.Text;
using DbStudio.Core.Csv;
using DbStudio.Core.Schema;

namespace DbStudio.Tests.Unit;

public class CsvPreviewTests
{
    [Fact]
    public async Task The_preview_shows_the_first_rows_and_infers_a_type_per_column_from_the_file()
    {
        var csv = "id,big,price,ratio,paid,key,day,at,meta,name,empty\n" +
                  "1,3000000000,1.50,1e3,true,7d0a3f6e-1b7e-4a8e-9a54-3d8d0d5b7a11,2024-01-31,2024-01-31T10:00:00Z,{\"a\":1},Ann,\n" +
                  "2,-4,2,2.5,f,9a1f4a6e-1b7e-4a8e-9a54-3d8d0d5b7a11,2024-02-01,2024-02-01 11:00:00+02,[1],\"Bob, Jr.\",\n" +
                  "3,5,,3,no,,,,,\"\",\n";
        var preview = await CsvPreviewReader.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes(csv)), show: 2);
        Assert.Equal(["id", "big", "price", "ratio", "paid", "key", "day", "at", "meta", "name", "empty"], preview.Header);
        Assert.Equal(2, preview.Rows.Count);
        Assert.Equal(3, preview.Sampled);
        Assert.Equal("Bob, Jr.", preview.Rows[1][9]);
        Assert.Null(preview.Rows[0][10]); // an empty field: NULL, as COPY reads it
        Assert.Equal(["INTEGER", "BIGINT", "NUMERIC", "FLOAT", "BOOLEAN", "UUID", "DATE", "TIMESTAMPTZ", "JSONB", "TEXT", "TEXT"], preview.Types);
        Assert.All(preview.Types, t => Assert.Contains(t, SchemaEditor.Types));
    }

    [Fact]
    public async Task An_empty_file_is_refused_with_line_1()
    {
        var e = await Assert.ThrowsAsync<CsvImportException>(() => CsvPreviewReader.ReadAsync(new MemoryStream()));
        Assert.Equal(1, Assert.Single(e.Errors).Line);
    }

    [Fact]
    public void The_progress_stream_counts_the_bytes_read()
    {
        long seen = 0;
        using var s = new ProgressStream(new MemoryStream(new byte[1000]), n => seen = n);
        var buffer = new byte[300];
        while (s.Read(buffer, 0, buffer.Length) > 0) { }
        Assert.Equal(1000, seen);
    }
}
