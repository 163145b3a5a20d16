using DbStudio.Core.Console;
using DbStudio.Web.Components.Panel;

namespace DbStudio.Tests.Unit;

public class CsvExportTests
{
    [Fact]
    public void Writes_rfc4180_with_nulls_empty_and_formulas_escaped()
    {
        var result = new StatementResult
        {
            Statement = "select",
            Columns = [new ResultColumn("id", "integer"), new ResultColumn("note", "text")],
            Rows = [["1", "plain"], ["2", "has \"quotes\", and a comma"], ["3", null], ["4", "=HYPERLINK(\"x\")"]],
        };
        var lines = CsvExport.ToCsv(result).Split("\r\n");
        Assert.Equal("id,note", lines[0]);
        Assert.Equal("1,plain", lines[1]);
        Assert.Equal("2,\"has \"\"quotes\"\", and a comma\"", lines[2]);
        Assert.Equal("3,", lines[3]);
        Assert.DoesNotMatch("^4,=", lines[4]); // a spreadsheet will not run it
    }
}
